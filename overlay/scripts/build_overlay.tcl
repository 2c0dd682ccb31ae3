# Build the cimstack overlay from the Vivado Tcl console (the Makefile does the same in
# batch mode):  source overlay/scripts/build_overlay.tcl
# It regenerates the block-design script from the overlay declaration and sources it.
set here [file dirname [file normalize [info script]]]
set root [file normalize [file join $here .. ..]]
set board [expr {[info exists ::env(BOARD)] ? $::env(BOARD) : "pynq-z2"}]
set out [file join $root overlay build $board]
file mkdir $out
set python [expr {[info exists ::env(PYTHON)] ? $::env(PYTHON) : "python3"}]
set name [string trim [exec $python -m cimstack.hw.blockdesign --board $board --name]]
exec $python -m cimstack.hw.blockdesign --board $board --out [file join $out ${name}_bd.tcl]
set argv [list $root $out]
set argc 2
source [file join $out ${name}_bd.tcl]
