package verify

import kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

func modeOf(m string) kubeproxyconfigv1alpha1.ProxyMode { return kubeproxyconfigv1alpha1.ProxyMode(m) }
