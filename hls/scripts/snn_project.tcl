# Shared setup of the snn Vitis HLS project; sourced by the snn_*.tcl flow scripts.
# The project is created under hls/build/vitis (relative to this script).
set hls_dir [file normalize [file join [file dirname [info script]] ..]]
set build_dir [file join $hls_dir build vitis]
file mkdir $build_dir
cd $build_dir

set cflags "-I$hls_dir/include -I$hls_dir/snn"
open_project -reset snn_prj
set_top snn_top
add_files $hls_dir/snn/snn_top.cpp -cflags $cflags
add_files -tb $hls_dir/snn/tb_snn.cpp -cflags $cflags
open_solution -reset solution1 -flow_target vivado
set_part xc7z020clg400-1
create_clock -period 10 -name default
