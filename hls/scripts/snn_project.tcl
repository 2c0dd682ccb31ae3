# The snn Vitis HLS project, sourced by the snn_*.tcl flow scripts: top function, part
# and clock (checked against the overlay declaration); the shared setup is project.tcl.
set kernel snn
source [file join [file dirname [info script]] project.tcl]
set_top snn_top
open_solution -reset solution1 -flow_target vivado
set_part xc7z020clg400-1
create_clock -period 10 -name default
