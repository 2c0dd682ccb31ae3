# C/RTL co-simulation of snn_top (synthesizes first) with tb_snn.cpp.
source [file join [file dirname [info script]] snn_project.tcl]
csynth_design
cosim_design -rtl verilog
exit
