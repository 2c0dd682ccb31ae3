# Shared setup of the acim Vitis HLS project; sourced by the acim_*.tcl flow scripts.
# The project is created under hls/build/vitis (relative to this script).
set hls_dir [file normalize [file join [file dirname [info script]] ..]]
set build_dir [file join $hls_dir build vitis]
file mkdir $build_dir
cd $build_dir

set cflags "-I$hls_dir/include -I$hls_dir/acim"
open_project -reset acim_prj
set_top acim_top
add_files $hls_dir/acim/acim_top.cpp -cflags $cflags
add_files -tb $hls_dir/acim/tb_acim.cpp -cflags $cflags
open_solution -reset solution1 -flow_target vivado
set_part xc7z020clg400-1
create_clock -period 10 -name default
