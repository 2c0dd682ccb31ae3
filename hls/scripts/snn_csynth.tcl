# Vitis HLS synthesis of snn_top for the PYNQ-Z2 (xc7z020clg400-1, 100 MHz).
source [file join [file dirname [info script]] snn_project.tcl]
csynth_design
exit
