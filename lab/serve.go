//go:build linux

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/kernel"
)

// Answer is what a lab server replies: who answered and the source it saw.
type Answer struct {
	Pod string         // "namespace/name"
	Saw netip.AddrPort // the connection's source address as the server saw it
	// Client is the client's own socket address (set by Dial, not sent on the wire).
	Client netip.AddrPort
}

// answerLine is the wire form: "knet-lab pod=NS/NAME saw=IP:PORT".
func (a Answer) line() string { return fmt.Sprintf("knet-lab pod=%s saw=%s", a.Pod, a.Saw) }

// ParseAnswer reads an answer line (also found inside an HTTP body or a DNS TXT record).
func ParseAnswer(s string) (Answer, error) {
	i := strings.Index(s, "knet-lab pod=")
	if i < 0 {
		return Answer{}, fmt.Errorf("no knet-lab answer in %q", s)
	}
	f := strings.Fields(s[i:])
	if len(f) < 3 || !strings.HasPrefix(f[2], "saw=") {
		return Answer{}, fmt.Errorf("malformed answer %q", s[i:])
	}
	ap, err := netip.ParseAddrPort(strings.TrimPrefix(f[2], "saw="))
	if err != nil {
		return Answer{}, fmt.Errorf("malformed answer %q: %w", s[i:], err)
	}
	return Answer{Pod: strings.TrimPrefix(f[1], "pod="), Saw: ap}, nil
}

// Listener is one server socket: a pod's container port.
type Listener struct {
	Pod   string
	NSKey string
	Proto corev1.Protocol
	Port  int32
}

// Listeners lists the servers the cluster's pods get: one per container port (TCP and UDP),
// in a pod's own namespace or, for a hostNetwork pod, its node's. Sorted.
func (l *Lab) Listeners() []Listener {
	seen := map[string]bool{}
	var out []Listener
	for _, p := range l.Cluster.Objects.Pods {
		if p.Spec.NodeName == "" {
			continue
		}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ls := Listener{Pod: p.Namespace + "/" + p.Name, NSKey: podNSKey(p), Proto: proto, Port: cp.ContainerPort}
				k := fmt.Sprintf("%s %s %d", ls.NSKey, proto, cp.ContainerPort)
				if seen[k] || (proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP) {
					continue
				}
				seen[k] = true
				out = append(out, ls)
			}
		}
	}
	// Endpoints that are no pod (the kubernetes Service's control-plane addresses) are
	// served on the node holding the address, named by the address.
	for _, es := range l.Cluster.Objects.EndpointSlices {
		for _, e := range es.Endpoints {
			if (e.TargetRef != nil && e.TargetRef.Kind == "Pod") || len(e.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(e.Addresses[0])
			if err != nil {
				continue
			}
			for _, n := range l.Cluster.Nodes {
				if n.IP != a {
					continue
				}
				for _, p := range es.Ports {
					if p.Port == nil {
						continue
					}
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					ls := Listener{Pod: a.String(), NSKey: "node/" + n.Name, Proto: proto, Port: *p.Port}
					k := fmt.Sprintf("%s %s %d", ls.NSKey, proto, ls.Port)
					if !seen[k] {
						seen[k] = true
						out = append(out, ls)
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.NSKey != b.NSKey {
			return a.NSKey < b.NSKey
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.Port < b.Port
	})
	return out
}

// Serve opens every listener inside its namespace (the sockets stay bound to it) and serves
// until ctx ends. ready, when non-nil, is closed once all sockets are open. TCP servers
// speak HTTP/1.0 to a request starting with "GET " and a plain answer line otherwise; UDP
// servers answer a DNS query with a TXT record holding the answer line, anything else with
// the line itself.
func (l *Lab) Serve(ctx context.Context, ready chan<- struct{}) error {
	var wg sync.WaitGroup
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	}()
	for _, ls := range l.Listeners() {
		ns, ok := l.nsByKey[ls.NSKey]
		if !ok {
			return fmt.Errorf("serve %s: no namespace %s", ls.Pod, ls.NSKey)
		}
		addr := fmt.Sprintf(":%d", ls.Port)
		var err error
		switch ls.Proto {
		case corev1.ProtocolTCP:
			var ln net.Listener
			err = ns.Do(func() error {
				var err error
				ln, err = net.Listen("tcp4", addr)
				return err
			})
			if err == nil {
				closers = append(closers, ln)
				wg.Add(1)
				go func() { defer wg.Done(); serveTCP(ln, ls.Pod) }()
			}
		case corev1.ProtocolUDP:
			var pc net.PacketConn
			err = ns.Do(func() error {
				var err error
				pc, err = net.ListenPacket("udp4", addr)
				return err
			})
			if err == nil {
				closers = append(closers, pc)
				wg.Add(1)
				go func() { defer wg.Done(); serveUDP(pc, ls.Pod) }()
			}
		}
		if err != nil {
			return fmt.Errorf("serve %s %s/%d in %s: %w", ls.Pod, ls.Proto, ls.Port, ns, err)
		}
	}
	if ready != nil {
		close(ready)
	}
	<-ctx.Done()
	return nil
}

func serveTCP(ln net.Listener, pod string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			line := Answer{Pod: pod, Saw: ap}.line()
			br := bufio.NewReader(c)
			req, _ := br.ReadString('\n')
			if strings.HasPrefix(req, "GET ") {
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s\n", len(line)+1, line)
				return
			}
			fmt.Fprintf(c, "%s\n", line)
		}()
	}
}

func serveUDP(pc net.PacketConn, pod string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		ap, _ := netip.ParseAddrPort(from.String())
		line := Answer{Pod: pod, Saw: ap}.line()
		reply := []byte(line + "\n")
		if r, err := dnsReply(buf[:n], line); err == nil {
			reply = r
		}
		pc.WriteTo(reply, from)
	}
}

// dnsReply answers a DNS query with one TXT record carrying txt.
func dnsReply(q []byte, txt string) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, errors.New("not a single-question query")
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(qs[0]); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if err := b.TXTResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.TXTResource{TXT: []string{txt}}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// Dial sends one request of kind ("tcp", "http", "udp" or "dns") from namespace ns to dst
// and returns the answer. The socket is made inside ns; the exchange is bounded by timeout.
func Dial(ctx context.Context, ns *kernel.NS, kind string, dst netip.AddrPort, timeout time.Duration) (Answer, error) {
	var reply string
	var local netip.AddrPort
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		network := "tcp4"
		if kind == "udp" || kind == "dns" {
			network = "udp4"
		}
		c, err := d.DialContext(ctx, network, dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		local, _ = netip.ParseAddrPort(c.LocalAddr().String())
		c.SetDeadline(time.Now().Add(timeout))
		switch kind {
		case "tcp":
			_, err = io.WriteString(c, "HELLO\n")
		case "http":
			_, err = fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: knet-lab\r\n\r\n", dst)
		case "udp":
			_, err = io.WriteString(c, "HELLO\n")
		case "dns":
			var q []byte
			q, err = dnsQuery()
			if err == nil {
				_, err = c.Write(q)
			}
		default:
			return fmt.Errorf("unknown request kind %q", kind)
		}
		if err != nil {
			return err
		}
		buf := make([]byte, 4096)
		n, err := io.ReadAtLeast(c, buf, 1)
		if err != nil {
			return err
		}
		if kind == "dns" {
			reply, err = txtOf(buf[:n])
			return err
		}
		reply = string(buf[:n])
		if kind == "http" {
			rest, _ := io.ReadAll(c)
			reply += string(rest)
			if !strings.HasPrefix(reply, "HTTP/1.0 200 OK") {
				return fmt.Errorf("http reply %q", reply)
			}
		}
		return nil
	})
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s from %s: %w", kind, dst, ns, err)
	}
	a, err := ParseAnswer(reply)
	a.Client = local
	return a, err
}

func dnsQuery() ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x6b6e, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("kubernetes.default.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

func txtOf(msg []byte) (string, error) {
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		return "", fmt.Errorf("dns reply: %w", err)
	}
	for _, a := range m.Answers {
		if t, ok := a.Body.(*dnsmessage.TXTResource); ok {
			return strings.Join(t.TXT, ""), nil
		}
	}
	return "", errors.New("dns reply without a TXT answer")
}
