package fabric

import (
	"context"
	"time"
)

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// nullPort accepts and discards everything: the cost of switching alone.
type nullPort struct{ name string }

func (p nullPort) Write(frames [][]byte) (int, error) { return len(frames), nil }
func (p nullPort) WaitWritable(time.Duration) bool    { return true }
func (p nullPort) MaxFrame() int                      { return 1518 }
func (p nullPort) Name() string                       { return p.name }
func (p nullPort) Close() error                       { return nil }

// filteringPort is a port whose kernel filtered some frames.
type filteringPort struct {
	nullPort
	filtered, overrun uint64
}

func (p *filteringPort) KernelDrops(d *[NumDropReasons]uint64) {
	d[DropFiltered] += p.filtered
	d[DropRxOverrun] += p.overrun
}
