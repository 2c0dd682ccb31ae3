# C/RTL co-simulation of dcim_top (synthesizes first) with tb_dcim.cpp.
source [file join [file dirname [info script]] dcim_project.tcl]
csynth_design
cosim_design -rtl verilog
exit
