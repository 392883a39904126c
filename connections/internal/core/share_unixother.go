//go:build unix && !linux

package core

import "os"

// newShareFile returns a temporary file that is already unlinked.
func newShareFile() (*os.File, error) {
	f, err := os.CreateTemp("", "goes-accept-share-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
