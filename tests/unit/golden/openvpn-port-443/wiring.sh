set -eu
ip link add br-lan type bridge
ip link set br-lan type bridge stp_state 0 forward_delay 0
ip link set br-lan up
ip link add br-wan type bridge
ip link set br-wan type bridge stp_state 0 forward_delay 0
ip link set br-wan up
# router: lan0 on the lan segment
ip link add p0 type veth peer name lan0 netns 1000
ip link set p0 master br-lan up
# router: wan0 on the wan segment
ip link add p1 type veth peer name wan0 netns 1000
ip link set p1 master br-wan up
# office: eth0 on the wan segment
ip link add p2 type veth peer name eth0 netns 1001
ip link set p2 master br-wan up
# https: eth0 on the wan segment
ip link add p3 type veth peer name eth0 netns 1002
ip link set p3 master br-wan up
# alice: eth0 on the lan segment
ip link add p4 type veth peer name eth0 netns 1003
ip link set p4 master br-lan up
