# C/RTL co-simulation of acim_top (synthesizes first) with tb_acim.cpp.
source [file join [file dirname [info script]] acim_project.tcl]
csynth_design
cosim_design -rtl verilog
exit
