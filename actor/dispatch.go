package actor

import "sync"

// poolDispatcher runs actor mailboxes on long-lived goroutines instead of a
// new goroutine per scheduling (protoactor's default): the goroutines keep
// their grown stacks, which spares the stack copying a fresh goroutine pays
// on every burst of messages. Schedule never blocks: when every worker is
// busy and the hand-off queue is full, it falls back to a new goroutine.
type poolDispatcher struct {
	work       chan func()
	done       chan struct{}
	throughput int
	wg         sync.WaitGroup
}

func newPoolDispatcher(workers, throughput int) *poolDispatcher {
	d := &poolDispatcher{work: make(chan func(), 4*workers), done: make(chan struct{}), throughput: throughput}
	d.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go d.worker()
	}
	return d
}

func (d *poolDispatcher) worker() {
	defer d.wg.Done()
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.done:
			return
		}
	}
}

// Schedule implements protoactor's Dispatcher.
func (d *poolDispatcher) Schedule(fn func()) {
	select {
	case <-d.done:
		go fn()
		return
	default:
	}
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput implements protoactor's Dispatcher: messages a mailbox
// processes before yielding its worker.
func (d *poolDispatcher) Throughput() int { return d.throughput }

// stop ends the workers once the actor system is down; anything scheduled
// later runs on its own goroutine.
func (d *poolDispatcher) stop() {
	close(d.done)
	d.wg.Wait()
	for {
		select {
		case fn := <-d.work:
			go fn()
		default:
			return
		}
	}
}
