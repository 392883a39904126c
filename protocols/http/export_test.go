package http

// FileSenders returns the number of goroutines sending file bodies.
func FileSenders() int64 { return fileSenders.Load() }
