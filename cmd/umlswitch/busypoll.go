package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/umlswitch/umlswitch/internal/pollfd"
)

// busyPoll makes the switch a busy-polling one on cpu (-busy-poll,
// busy_poll): every thread of the process pinned there, Go running on one
// of them (GOMAXPROCS 1), and every port's reader spinning on its socket
// instead of sleeping until the kernel wakes it. A frame is then taken the moment
// it arrives: a round trip through the switch loses the two wake-ups of a
// sleeping switch, and that CPU is always busy. For labs that measure
// latency; the switch forwards on that one CPU.
func busyPoll(cpu int) error {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("busy-poll: %w", err)
	}
	if cpu < 0 || cpu >= 1024 || !allowed.IsSet(cpu) {
		return fmt.Errorf("busy-poll on CPU %d: not a CPU this process may run on (it may use %s)", cpu, cpuList(&allowed))
	}
	var one unix.CPUSet
	one.Set(cpu)
	// A thread starts with the mask of the thread that made it: after two
	// passes over the threads, every new one is pinned too.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("busy-poll: %w", err)
		}
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				if err := unix.SchedSetaffinity(tid, &one); err != nil && err != unix.ESRCH {
					return fmt.Errorf("busy-poll on CPU %d: pin thread %d: %w", cpu, tid, err)
				}
			}
		}
	}
	runtime.GOMAXPROCS(1)
	pollfd.SetBusyPoll(true)
	return nil
}

// cpuList prints a CPU set as 0,1,3.
func cpuList(set *unix.CPUSet) string {
	s := ""
	for c := range 1024 {
		if set.IsSet(c) {
			if s != "" {
				s += ","
			}
			s += strconv.Itoa(c)
		}
	}
	return s
}
