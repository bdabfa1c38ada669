package kvserver

import "github.com/flotilla-dev/flotilla/transport"

// faults installs a fault filter on the member's transport when
// Config.FaultInjection is set, and returns it (nil otherwise) for the
// admin endpoint.
func (s *Server) faults() *transport.Faults {
	if !s.cfg.FaultInjection {
		return nil
	}
	f := transport.NewFaults()
	s.host.Node().Transport().SetFaults(f)
	s.log.Warn("fault injection enabled: /debug/faults on the admin endpoint can cut this member's peer traffic; never use this in production")
	return f
}
