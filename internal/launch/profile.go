package launch

import "runtime"

// SetProfileRates applies the config's block_profile_rate and
// mutex_profile_fraction to this process (master or worker); 0 leaves
// the profile off.
func SetProfileRates(block, mutex int) {
	if block > 0 {
		runtime.SetBlockProfileRate(block)
	}
	if mutex > 0 {
		runtime.SetMutexProfileFraction(mutex)
	}
}
