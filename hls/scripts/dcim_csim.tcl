# Vitis HLS C simulation of dcim_top with tb_dcim.cpp.
source [file join [file dirname [info script]] dcim_project.tcl]
csim_design
exit
