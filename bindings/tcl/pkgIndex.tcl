package ifneeded sqlite_sync 0.2 [list source [file join $dir sqlite_sync.tcl]]
