package ena

import "github.com/enanet/enanet/ena/hw"

// openWithHooks is Open with test hooks set: bring-up behaviour no user
// wants (such as registering the AENQ late) stays off the public Config.
func openWithHooks(dev hw.Device, cfg Config, hooks testHooks) (*Device, error) {
	return open(dev, cfg, hooks)
}
