# Vitis HLS synthesis of acim_top for the PYNQ-Z2 (xc7z020clg400-1, 100 MHz).
source [file join [file dirname [info script]] acim_project.tcl]
csynth_design
exit
