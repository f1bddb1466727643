package actor

import "sync"

// poolDispatcher runs actor mailboxes on long-lived goroutines instead of a
// new goroutine per scheduling (protoactor's default): the goroutines keep
// their grown stacks, which spares the stack copying a fresh goroutine pays
// on every burst of messages. Schedule never blocks: when every worker is
// busy and the hand-off queue is full, it falls back to a new goroutine.
type poolDispatcher struct {
	work       chan func()
	throughput int
	mu         sync.RWMutex // Schedule reads, stop writes: no send on a closed channel
	stopped    bool
	wg         sync.WaitGroup
}

// dispatchQueue is the capacity of the hand-off queue. Thousands of
// entities can become runnable at once (each with one message); a queue
// that overflows falls back to fresh goroutines, whose stacks then grow
// on every run (measured: a tenth of the CPU with a queue of 64).
const dispatchQueue = 1 << 16

func newPoolDispatcher(workers, throughput int) *poolDispatcher {
	d := &poolDispatcher{work: make(chan func(), dispatchQueue), throughput: throughput}
	d.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go d.worker()
	}
	return d
}

// worker receives from one channel only: cheaper than a select per message.
func (d *poolDispatcher) worker() {
	defer d.wg.Done()
	for fn := range d.work {
		fn()
	}
}

// Schedule implements protoactor's Dispatcher.
func (d *poolDispatcher) Schedule(fn func()) {
	d.mu.RLock()
	if d.stopped {
		d.mu.RUnlock()
		go fn()
		return
	}
	select {
	case d.work <- fn:
	default:
		go fn()
	}
	d.mu.RUnlock()
}

// Throughput implements protoactor's Dispatcher: messages a mailbox
// processes before yielding its worker.
func (d *poolDispatcher) Throughput() int { return d.throughput }

// stop ends the workers once the actor system is down, after they ran what
// was already handed to them; anything scheduled later runs on its own
// goroutine.
func (d *poolDispatcher) stop() {
	d.mu.Lock()
	if !d.stopped {
		d.stopped = true
		close(d.work)
	}
	d.mu.Unlock()
	d.wg.Wait()
}
