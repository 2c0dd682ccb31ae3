# Synthesize dcim_top and export it to the IP catalog as cimstack.org:hls:dcim_top:1.0.
source [file join [file dirname [info script]] dcim_project.tcl]
csynth_design
export_design -format ip_catalog -rtl verilog -vendor cimstack.org -library hls -version 1.0 \
    -display_name dcim_top -description "cimstack digital CIM macro kernel"
exit
