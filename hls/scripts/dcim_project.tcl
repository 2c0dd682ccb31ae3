# Shared setup of the dcim Vitis HLS project; sourced by the dcim_*.tcl flow scripts.
# The project is created under hls/build/vitis (relative to this script).
set hls_dir [file normalize [file join [file dirname [info script]] ..]]
set build_dir [file join $hls_dir build vitis]
file mkdir $build_dir
cd $build_dir

set cflags "-I$hls_dir/include -I$hls_dir/dcim"
open_project -reset dcim_prj
set_top dcim_top
add_files $hls_dir/dcim/dcim_top.cpp -cflags $cflags
add_files -tb $hls_dir/dcim/tb_dcim.cpp -cflags $cflags
open_solution -reset solution1 -flow_target vivado
set_part xc7z020clg400-1
create_clock -period 10 -name default
