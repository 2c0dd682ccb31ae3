# Vitis HLS C simulation of snn_top with tb_snn.cpp.
source [file join [file dirname [info script]] snn_project.tcl]
csim_design
exit
