# Synthesize acim_top and export it to the IP catalog as cimstack.org:hls:acim_top:1.0.
source [file join [file dirname [info script]] acim_project.tcl]
csynth_design
export_design -format ip_catalog -rtl verilog -vendor cimstack.org -library hls -version 1.0 \
    -display_name acim_top -description "cimstack analog CIM macro kernel"
exit
