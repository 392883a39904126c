//go:build unix

package master

import (
	"fmt"

	"github.com/goes-project/goes/internal/ticketkeys"
	"github.com/goes-project/goes/ipc"
)

// ticketKeysName names the ticket key set among the descriptors a master
// hands to its successor (tableflip).
const ticketKeysName = "goes-ticket-keys"

// initTicketKeys takes the previous master's TLS session ticket keys
// when a reload started this one (sessions resume across it), else
// draws a new set. Run loop, before the first worker.
func (m *master) initTicketKeys() error {
	if m.upg.HasParent() {
		f, err := m.upg.tf.File(ticketKeysName)
		if err == nil && f != nil {
			m.tickets, err = ticketkeys.ReadFile(f)
		}
		if err == nil && f != nil {
			return nil
		}
		// A previous master of an older goes: sessions from before this
		// reload do a full handshake.
		m.log.Warn().Err(err).Msg("no TLS session ticket keys from the previous master: new ones")
	}
	var err error
	if m.tickets, err = ticketkeys.New(); err != nil {
		return fmt.Errorf("master: %w", err)
	}
	return nil
}

// rotateTicketKeys draws a new encryption key (the previous ones still
// decrypt) and pushes the set to every worker. Run loop.
func (m *master) rotateTicketKeys() {
	next, err := m.tickets.Rotate()
	if err != nil {
		m.log.Error().Err(err).Msg("TLS session ticket key rotation failed: the keys stay")
		return
	}
	m.tickets = next
	for p := range m.procs {
		p.tell(ipc.TypeTicketKeys, ipc.TicketKeys{Keys: next.Encode()})
	}
	m.log.Debug().Int("keys", len(next)).Msg("TLS session ticket keys rotated")
}

// passTicketKeys hands keys to the master the coming upgrade starts (on
// a pipe among tableflip's descriptors). Any goroutine.
func (m *master) passTicketKeys(keys ticketkeys.Set) error {
	f, err := keys.File()
	if err != nil {
		return fmt.Errorf("pass the TLS session ticket keys on: %w", err)
	}
	defer f.Close() // tableflip holds its own copy
	if err := m.upg.tf.AddFile(ticketKeysName, f); err != nil {
		return fmt.Errorf("pass the TLS session ticket keys on: %w", err)
	}
	return nil
}
