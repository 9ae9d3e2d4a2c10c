package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// forceKey carries the channel a second interrupt closes.
type forceKey struct{}

// WithForce returns ctx carrying force: when force is closed, a run in
// progress is forced to end (see rollout.Engine.Force).
func WithForce(ctx context.Context, force <-chan struct{}) context.Context {
	return context.WithValue(ctx, forceKey{}, force)
}

func forceOf(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(forceKey{}).(<-chan struct{})
	return ch
}

// Main is relctl's entry point: it runs Run with relctl's interrupt
// discipline and returns the exit code.
//
// The first Ctrl-C, SIGTERM or SIGHUP cancels the command's context: a run
// finishes or reverts the host in flight (bounded by the timeouts) and
// starts nothing new. The second one forces: the command in flight is cut,
// the host in flight gets one bounded attempt to go back into rotation,
// and relctl exits with the journal settled, the lock released (or its
// state stated) and every host not in service named. Later signals are
// acknowledged and change nothing: the forced end is already bounded.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	force := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	note := &phaseNote{}
	go interruptsNoted(sigs, done, cancel, force, stderr, note)
	return Run(withPhaseNote(WithForce(ctx, force), note), args, stdin, stdout, stderr)
}

// interrupts turns signals into the first (cancel) and second (force)
// interrupt.
func interrupts(sigs <-chan os.Signal, done <-chan struct{}, cancel context.CancelFunc, force chan<- struct{}, stderr io.Writer) {
	interruptsNoted(sigs, done, cancel, force, stderr, nil)
}

// interruptsNoted is interrupts saying, when note holds a phase's words
// (setPhase), what an interrupt does in that phase instead of a run's.
func interruptsNoted(sigs <-chan os.Signal, done <-chan struct{}, cancel context.CancelFunc, force chan<- struct{}, stderr io.Writer, note *phaseNote) {
	n := 0
	for {
		select {
		case <-done:
			return
		case sig := <-sigs:
			n++
			w := note.words()
			if w != nil {
				say := w.first
				if n > 1 {
					say = w.again
				}
				fmt.Fprintf(stderr, "\nrelctl: %s: %s\n", sig, say)
			}
			switch n {
			case 1:
				if w == nil {
					fmt.Fprintf(stderr, "\nrelctl: %s: finishing or reverting the host in flight and starting nothing new; interrupt again to force\n", sig)
				}
				cancel()
			case 2:
				if w == nil {
					fmt.Fprintf(stderr, "\nrelctl: %s again: forcing — the host in flight gets one bounded attempt to go back into rotation, then relctl exits\n", sig)
				}
				close(force)
			default:
				if w == nil {
					fmt.Fprintf(stderr, "\nrelctl: %s: already forcing; relctl exits as soon as the journal and the lock are settled\n", sig)
				}
			}
		}
	}
}
