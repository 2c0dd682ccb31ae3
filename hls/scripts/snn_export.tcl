# Synthesize snn_top and export it to the IP catalog as cimstack.org:hls:snn_top:1.0.
source [file join [file dirname [info script]] snn_project.tcl]
csynth_design
export_design -format ip_catalog -rtl verilog -vendor cimstack.org -library hls -version 1.0 \
    -display_name snn_top -description "cimstack spiking event core kernel"
exit
