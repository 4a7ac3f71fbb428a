#!/bin/sh
# Recreates the golden files: run as root; uses a throwaway network namespace only.
# ipset v7.17 on Linux 6.18 (the machine that produced the committed files).
set -e
NS=knet-ipset-golden
ip netns add $NS
trap "ip netns del $NS" EXIT
E="ip netns exec $NS ipset"
$E create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 initval 0x1a2b3c4d
$E add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
$E add KUBE-CLUSTER-IP 10.96.0.10,udp:53
$E add KUBE-CLUSTER-IP 10.96.0.10,tcp:53
$E add KUBE-CLUSTER-IP 10.96.0.10,tcp:9153
$E create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536 initval 0x01020304
$E add KUBE-LOOP-BACK 10.244.1.3,tcp:53,10.244.1.3
$E add KUBE-LOOP-BACK 10.244.1.3,udp:53,10.244.1.3
$E create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536 initval 0x0badcafe
$E add KUBE-LOAD-BALANCER-SOURCE-CIDR 192.168.10.240,tcp:80,203.0.113.0/24
$E add KUBE-LOAD-BALANCER-SOURCE-CIDR 192.168.10.240,tcp:80,198.51.100.7
$E create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
$E add KUBE-NODE-PORT-TCP 30080
$E add KUBE-NODE-PORT-TCP 31000
$E create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536 initval 0xdeadbeef
$E add KUBE-IPVS-IPS 10.96.0.1
$E add KUBE-IPVS-IPS 10.96.0.10
$E add KUBE-IPVS-IPS 192.168.10.240
$E create KUBE-6-IPVS-IPS hash:ip family inet6 hashsize 1024 maxelem 65536 initval 0x00c0ffee
$E add KUBE-6-IPVS-IPS fd00::a
$E create SRC-NETS hash:net family inet hashsize 1024 maxelem 65536 comment initval 0x11111111
$E add SRC-NETS 10.0.0.0/8 comment "pod network"
$E add SRC-NETS 10.1.0.0/16 nomatch
$E add SRC-NETS 172.16.0.1
$E create ALL list:set size 8
$E add ALL KUBE-IPVS-IPS
$E add ALL SRC-NETS
$E save -sorted > sample.ipset-save
$E list -sorted > sample.ipset-list
$E list -t > sample.ipset-list-t
$E list -n > sample.ipset-list-n

# Kernel listing order (no -sorted): hash buckets under fixed initvals.
NS2=knet-ipset-order
ip netns add $NS2
trap 'ip netns del $NS; ip netns del $NS2' EXIT
F="ip netns exec $NS2 ipset"
$F create H hash:ip family inet hashsize 1024 maxelem 65536 initval 0xdeadbeef
for i in $(seq 1 20); do $F add H 10.96.$((i*7%5)).$((i*13%250)); done
$F create P hash:ip,port family inet hashsize 1024 maxelem 65536 initval 0x1a2b3c4d
for i in $(seq 1 12); do $F add P 10.96.0.$i,tcp:$((80+i)); $F add P 10.96.0.$i,udp:53; done
$F create A hash:ip,port,ip family inet hashsize 1024 maxelem 65536 initval 0x01020304
for i in $(seq 1 15); do $F add A 10.244.1.$i,tcp:$((50+i)),10.244.1.$i; $F add A 10.244.1.$i,udp:53,10.244.1.$i; done
$F create N hash:ip,port,net family inet hashsize 1024 maxelem 65536 initval 0x0badcafe
for i in $(seq 1 15); do $F add N 192.168.10.$i,tcp:80,203.0.$i.0/24; $F add N 192.168.10.$i,tcp:443,198.51.100.$i; done
$F create T hash:net family inet hashsize 1024 maxelem 65536 initval 0x11111111
for i in $(seq 1 15); do $F add T 10.$i.0.0/16; $F add T 172.16.$i.1; $F add T 10.$i.128.0/17 nomatch; done
$F save > order.ipset-save
