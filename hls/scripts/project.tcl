# Shared setup of a kernel's Vitis HLS project, sourced by scripts/<kernel>_project.tcl
# with `kernel` set: opens <kernel>_prj under hls/build/vitis (relative to this script)
# with hls/<kernel>/<kernel>_top.cpp and its testbench hls/<kernel>/tb_<kernel>.cpp.
set hls_dir [file normalize [file join [file dirname [info script]] ..]]
set build_dir [file join $hls_dir build vitis]
file mkdir $build_dir
cd $build_dir

set cflags "-I$hls_dir/include -I$hls_dir/$kernel"
open_project -reset ${kernel}_prj
add_files $hls_dir/$kernel/${kernel}_top.cpp -cflags $cflags
add_files -tb $hls_dir/$kernel/tb_${kernel}.cpp -cflags $cflags
