// Where the whole-stack kernel suites find the Kubernetes API. Shared by the host side
// (test/vm/run-kernel-suites.ts, which starts kube-apiserver and the QEMU forward) and the guest side
// (test/kernel/cluster-lab.ts, which relays the lab's management network to that forward).
//
//   lab netns (agent)  --mgmt0-->  10.96.0.1:443  relay in the VM's root netns
//                                      --> 10.0.2.100:6443  QEMU guestfwd (user network, restrict=on)
//                                      --> 127.0.0.1:<port> on the host: the harness's kube-apiserver
//
// 10.96.0.1 is the address a cluster's `kubernetes` Service usually has; the harness puts it in the serving
// certificate, so TLS verification stays on everywhere.
export const API_RELAY_ADDRESS = '10.96.0.1';
export const API_RELAY_PORT = 443;
export const API_RELAY_URL = `https://${API_RELAY_ADDRESS}:${API_RELAY_PORT}`;
/** Guest port of the QEMU guestfwd that ends at the host's kube-apiserver. */
export const API_GUEST_PORT = 6443;
/** Prefix length of the lab's management network (10.96.0.0/24: the relay is .1, nodes get .10 and up). */
export const MGMT_PREFIX = 24;
