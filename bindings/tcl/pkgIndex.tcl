package ifneeded sqlite_sync 0.1 [list source [file join $dir sqlite_sync.tcl]]
