// Package livetest is a test-only module: it runs knet's live cluster import
// (github.com/knet-dev/knet/cluster/live) against a real kube-apiserver started in process
// from k8s.io/kubernetes v1.37.2 (cmd/kube-apiserver/app/testing) with an etcd embedded from
// go.etcd.io/etcd/server/v3. Those dependencies are heavy, so they live here and the knet
// binary does not carry them.
package livetest
