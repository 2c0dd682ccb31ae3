# Vitis HLS C simulation of acim_top with tb_acim.cpp.
source [file join [file dirname [info script]] acim_project.tcl]
csim_design
exit
