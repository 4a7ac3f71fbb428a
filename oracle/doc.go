// Package oracle checks knet's kube-proxy renderer against kube-proxy itself: it runs
// upstream kube-proxy's iptables Proxier (k8s.io/kubernetes v1.37.2, pkg/proxy/iptables)
// in-process on the fake iptables of pkg/util/iptables/testing, feeds it and knet the same
// Services and EndpointSlices, and compares the iptables-restore input each writes.
//
// It is a separate, test-only Go module so that the knet module and binary never depend on
// k8s.io/kubernetes. Run it with `cd oracle && go test ./...` (the root Makefile's `test`
// target does).
package oracle
