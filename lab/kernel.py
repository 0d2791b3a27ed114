"""What the Docker engine's kernel can do for each VPN protocol.

Why: VPN daemons need kernel pieces (PPP, L2TP, ESP, WireGuard, TUN, the PPTP
conntrack helper) that containers share with whatever kernel runs the engine —
this machine's host kernel lacks PPP, L2TP, ESP and WireGuard, a User-Mode Linux
guest has most of them. So the probe runs *through the engine* in a short-lived
container (network ``none``: it sends no packets anywhere) and every verdict
names the missing feature the way a person needs to look for it.

``PROBE_SCRIPT`` prints one ``name=yes|no|unknown detail`` line per feature;
``parse_probe`` is pure; ``check_protocol`` turns features into a per-protocol
verdict with the path it would take (e.g. wireguard-go when there is no kernel
WireGuard, strongSwan kernel-libipsec when there is no kernel ESP).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lab.errors import ImageError, PrerequisiteError

if TYPE_CHECKING:  # pragma: no cover
    import docker

PROBE_LABELS = {"vpnlab.probe": "1", "vpnlab.lab": "_probe"}
PROBE_TIMEOUT_S = 120.0  # a UML guest takes ~8 s just to start a container

# POSIX sh (dash). Robust to missing tools: the functional test is preferred,
# then /proc/config.gz, otherwise the feature is reported as 'unknown'.
PROBE_SCRIPT = r"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH LC_ALL=C
have() { command -v "$1" >/dev/null 2>&1; }
T=""; have timeout && T="timeout 10"
out() {
  d=$(printf '%s' "$3" | tr '\n\t\r' '   ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300)
  printf '%s=%s %s\n' "$1" "$2" "$d"
}
CFG=""
if [ -r /proc/config.gz ] && have zcat; then CFG=$(zcat /proc/config.gz 2>/dev/null); fi
cfg() {
  [ -n "$CFG" ] || return 0
  v=$(printf '%s\n' "$CFG" | sed -n "s/^$1=//p")
  if [ -n "$v" ]; then printf '%s' "$v"; else printf n; fi
}
from_cfg() {  # name CONFIG_OPTION why
  case "$(cfg "$2")" in
    y) out "$1" yes "$3; $2=y in /proc/config.gz" ;;
    m) out "$1" unknown "$3; $2=m (module, load state not checked)" ;;
    n) out "$1" no "$3; $2 is not set in /proc/config.gz" ;;
    *) out "$1" unknown "$3; no /proc/config.gz" ;;
  esac
}
sock() {  # domain type-name protocol -> prints ok or the errno text
  perl -MSocket -e 'my %t=(STREAM=>SOCK_STREAM,DGRAM=>SOCK_DGRAM,RAW=>SOCK_RAW);
    socket(my $s, $ARGV[0], $t{$ARGV[1]}, $ARGV[2]) or do { print "$!"; exit 1 }; print "ok"' "$@" 2>&1
}
missing=""
for t in ip iptables iptables-legacy perl zcat; do have "$t" || missing="$missing $t"; done
out tools yes "missing:${missing:- none}"
out release yes "$(uname -r) $(uname -m)"

# --- tun
TUN=/dev/net/tun; tunnode="engine host /dev/net/tun passed"
if [ ! -e "$TUN" ]; then
  tunnode="engine host has no /dev/net/tun node"
  mknod /tmp/vpnlab-tun c 10 200 2>/dev/null && TUN=/tmp/vpnlab-tun
fi
if have ip && [ "$TUN" = /dev/net/tun ]; then
  if e=$($T ip tuntap add mode tun name vpt0 2>&1); then
    ip link del vpt0 >/dev/null 2>&1; out tun yes "created a TUN interface; $tunnode"
  else out tun no "ip tuntap add: $e; $tunnode"; fi
elif e=$( (exec 3<>"$TUN") 2>&1 ); then out tun yes "opened $TUN; $tunnode"
else
  e=${e##*: }
  case "$e" in
    *ermission*|*permitted*) from_cfg tun CONFIG_TUN "open $TUN: $e" ;;
    *) out tun no "open $TUN: $e; $tunnode" ;;
  esac
fi

# --- ppp (ppp_generic: char major 108)
pppnode="engine host /dev/ppp: not present"; [ -e /dev/ppp ] && pppnode="engine host /dev/ppp passed"
PPP=/dev/ppp
[ -e "$PPP" ] || { mknod /tmp/vpnlab-ppp c 108 0 2>/dev/null && PPP=/tmp/vpnlab-ppp; }
major=no; grep -q '^108 ppp$' /proc/devices 2>/dev/null && major=yes
if [ -e "$PPP" ] && e=$( (exec 3<>"$PPP") 2>&1 ); then out ppp yes "opened $PPP (ppp_generic); $pppnode"
elif [ $major = yes ]; then out ppp yes "char major 108 (ppp) registered; open $PPP: ${e##*: }; $pppnode"
else
  e=${e##*: }
  case "$e" in
    *ermission*|*permitted*) from_cfg ppp CONFIG_PPP "open $PPP: $e" ;;
    *) out ppp no "no char major 108 in /proc/devices; open $PPP: ${e:-no node}" ;;
  esac
fi

# --- l2tp: xl2tpd needs a PPPoL2TP socket (l2tp_core + l2tp_ppp); `ip l2tp` (l2tp_netlink,
# L2TPv3) is reported alongside but does not decide: kernels built without L2TPv3 run xl2tpd fine.
netlink=""
if have ip; then
  if e=$($T ip l2tp add tunnel tunnel_id 4242 peer_tunnel_id 4242 encap udp local 127.0.0.1 remote 127.0.0.1 udp_sport 41701 udp_dport 41701 2>&1); then
    ip l2tp del tunnel tunnel_id 4242 >/dev/null 2>&1
    netlink="; ip l2tp (l2tp_netlink) works"
  else
    netlink="; ip l2tp: $e"
  fi
fi
if have perl; then
  s=$(sock 24 DGRAM 1)
  if [ "$s" = ok ]; then out l2tp yes "PPPoL2TP socket ok (l2tp_ppp)$netlink"
  else out l2tp no "PPPoL2TP socket (AF_PPPOX, PX_PROTO_OL2TP): $s$netlink"; fi
else from_cfg l2tp CONFIG_PPPOL2TP "no perl$netlink"; fi

# --- pptp kernel driver (informational: pptp-linux and pptpd do GRE in user space)
if have perl; then
  s=$(sock 24 STREAM 2)
  if [ "$s" = ok ]; then out pptp yes "PPTP socket ok (pptp module); pptp-linux/pptpd need only ppp"
  else out pptp no "PPTP socket (AF_PPPOX, PX_PROTO_PPTP): $s; pptp-linux/pptpd do GRE in user space and need only ppp"; fi
else from_cfg pptp CONFIG_PPTP "no perl"; fi

# --- xfrm (netlink)
xfrm=unknown
if have ip; then
  if e=$($T ip xfrm state list 2>&1); then xfrm=yes; out xfrm yes "ip xfrm state list works"
  else xfrm=no; out xfrm no "ip xfrm state list: $e"; fi
elif have perl; then
  s=$(sock 16 RAW 6)
  if [ "$s" = ok ]; then xfrm=yes; out xfrm yes "NETLINK_XFRM socket ok"
  else xfrm=no; out xfrm no "NETLINK_XFRM socket: $s"; fi
else from_cfg xfrm CONFIG_XFRM_USER "no ip, no perl"; fi

# --- esp (esp4 transform)
K16=0x00112233445566778899aabbccddeeff
if [ $xfrm = no ]; then out esp no "no XFRM netlink, so no kernel SAs at all"
elif have ip; then
  if e=$($T ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport enc 'cbc(aes)' $K16 auth 'hmac(sha256)' ${K16}00112233445566778899aabbccddeeff 2>&1) \
     || e2=$($T ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport aead 'rfc4106(gcm(aes))' ${K16}01020304 128 2>&1); then
    ip xfrm state flush >/dev/null 2>&1; out esp yes "ESP SA installed"
  else
    case "$e" in
      *"Protocol not supported"*|*"type not found"*) out esp no "ip xfrm state add proto esp: $e" ;;
      *) out esp unknown "ip xfrm state add proto esp: $e / $e2" ;;
    esac
  fi
else from_cfg esp CONFIG_INET_ESP "no ip"; fi

# --- wireguard
if have ip; then
  if e=$($T ip link add wgprobe type wireguard 2>&1); then
    ip link del wgprobe >/dev/null 2>&1; out wireguard yes "created a wireguard link"
  else
    case "$e" in
      *"Unknown device type"*|*"not supported"*) out wireguard no "ip link add type wireguard: $e" ;;
      *) out wireguard unknown "ip link add type wireguard: $e" ;;
    esac
  fi
else from_cfg wireguard CONFIG_WIREGUARD "no ip"; fi

# --- pptp conntrack helper attachable with -j CT (nf_conntrack_pptp, xt_CT, raw table)
errs=""; done_=""
for ipt in iptables iptables-legacy iptables-nft; do
  have "$ipt" || continue
  if e=$($T $ipt -t raw -A PREROUTING -p tcp --dport 1723 -j CT --helper pptp 2>&1); then
    $ipt -t raw -D PREROUTING -p tcp --dport 1723 -j CT --helper pptp >/dev/null 2>&1
    done_=$ipt; break
  fi
  errs="$errs $ipt: $e;"
done
if [ -n "$done_" ]; then out pptp_helper yes "-j CT --helper pptp accepted by $done_${errs:+ (failed first:$errs)}"
elif [ -n "$errs" ]; then out pptp_helper no "$errs"
else from_cfg pptp_helper CONFIG_NF_CONNTRACK_PPTP "no iptables"; fi

# --- nf_nat_pptp (rewrites call IDs; not autoloaded by -j CT --helper pptp)
if [ -d /sys/module/nf_nat_pptp ]; then out nf_nat_pptp yes "module loaded (/sys/module/nf_nat_pptp)"
elif [ -r /proc/kallsyms ] && [ -n "$(head -n 1 /proc/kallsyms 2>/dev/null)" ]; then
  if grep -q -E '( pptp_nat_expected| nf_nat_helper_pptp_init|\[nf_nat_pptp\])' /proc/kallsyms; then
    out nf_nat_pptp yes "nf_nat_pptp symbols in /proc/kallsyms"
  else
    case "$(cfg CONFIG_NF_NAT_PPTP)" in
      m) out nf_nat_pptp no "built as a module but not loaded: modprobe nf_nat_pptp on the engine host" ;;
      *) out nf_nat_pptp no "no nf_nat_pptp symbols in /proc/kallsyms (not loaded or not built)" ;;
    esac
  fi
else from_cfg nf_nat_pptp CONFIG_NF_NAT_PPTP "/proc/kallsyms unreadable"; fi

# --- conntrack sysctls (set per container at create time; not writable from inside)
if [ -e /proc/sys/net/netfilter/nf_conntrack_udp_timeout ]; then
  out conntrack_sysctl yes "/proc/sys/net/netfilter/nf_conntrack_udp_timeout exists"
else out conntrack_sysctl no "/proc/sys/net/netfilter/nf_conntrack_udp_timeout missing"; fi
echo end=yes
"""

FEATURE_NAMES = (
    "tun", "ppp", "l2tp", "pptp", "xfrm", "esp", "wireguard",
    "pptp_helper", "nf_nat_pptp", "conntrack_sysctl",
)
_META = ("release", "tools", "end")

# How a person looks for each feature (module / config / device node).
FEATURE_LABELS = {
    "tun": "TUN (tun, /dev/net/tun)",
    "ppp": "PPP (ppp_generic, /dev/ppp)",
    "l2tp": "L2TP (l2tp_ppp)",
    "pptp": "PPTP kernel driver (pptp)",
    "xfrm": "XFRM netlink (xfrm_user)",
    "esp": "ESP (esp4)",
    "wireguard": "WireGuard (wireguard)",
    "pptp_helper": "PPTP conntrack helper (nf_conntrack_pptp, xt_CT)",
    "nf_nat_pptp": "PPTP NAT helper (nf_nat_pptp)",
    "conntrack_sysctl": "conntrack sysctls (nf_conntrack)",
}


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool | None  # None = could not tell
    detail: str = ""


@dataclass
class KernelFeatures:
    release: str
    features: dict[str, Feature]
    complete: bool = True  # False when the probe output ended early
    tools: str = ""

    def available(self, name: str) -> bool | None:
        f = self.features.get(name)
        return f.available if f else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "complete": self.complete,
            "tools": self.tools,
            "features": {k: asdict(v) for k, v in self.features.items()},
        }


_STATUS = {"yes": True, "no": False, "unknown": None}


def parse_probe(text: str) -> KernelFeatures:
    """Parse PROBE_SCRIPT output. Features it did not report come back unknown."""
    release, tools, complete = "", "", False
    features: dict[str, Feature] = {}
    for line in text.splitlines():
        name, sep, rest = line.strip().partition("=")
        if not sep or not name.replace("_", "").isalnum():
            continue
        status, _, detail = rest.partition(" ")
        if status not in _STATUS:
            continue
        detail = detail.strip()
        if name == "release":
            release = detail.split(" ")[0] if detail else ""
        elif name == "tools":
            tools = detail
        elif name == "end":
            complete = True
        else:
            features[name] = Feature(name, _STATUS[status], detail)
    for name in FEATURE_NAMES:
        features.setdefault(name, Feature(name, None, "not reported by the probe"))
    return KernelFeatures(release=release, features=features, complete=complete, tools=tools)


def _is_device_error(err: Exception, path: str) -> bool:
    text = str(err)
    return path in text and ("device" in text or "no such file" in text.lower())


def probe_engine_kernel(
    client: docker.DockerClient, image: str, *, timeout: float = PROBE_TIMEOUT_S
) -> KernelFeatures:
    """Run PROBE_SCRIPT in a throwaway container on ``client``'s engine.

    /dev/net/tun and /dev/ppp are passed when the engine host has them (a
    missing node makes the engine refuse the container: we retry without it);
    ``c 108:0`` is allowed in the device cgroup so the script can mknod and open
    a PPP node itself, telling "kernel lacks PPP" from "host lacks /dev/ppp".
    """
    import docker.errors
    import requests.exceptions

    devices = ["/dev/net/tun", "/dev/ppp"]
    for _attempt in range(len(devices) + 1):
        container = None
        try:
            container = client.containers.create(
                image,
                entrypoint=["/bin/sh", "-c", PROBE_SCRIPT],
                user="0",
                network_disabled=True,  # own namespace with only lo; skips libnetwork (fast in a UML guest)
                cap_add=["NET_ADMIN"],
                devices=[f"{d}:{d}:rwm" for d in devices],
                device_cgroup_rules=["c 10:200 rwm", "c 108:0 rwm"],
                labels=dict(PROBE_LABELS),
                detach=True,
            )
            container.start()
            try:
                result = container.wait(timeout=timeout)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as e:
                raise PrerequisiteError(
                    "kernel probe", f"no answer from the probe container within {timeout:.0f} s ({e})"
                ) from e
            text = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            features = parse_probe(text)
            if not features.complete:
                err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
                raise PrerequisiteError(
                    "kernel probe",
                    f"probe stopped early (exit {result.get('StatusCode')}): {err.strip()[-500:]}",
                )
            return features
        except docker.errors.ImageNotFound as e:
            raise ImageError(image, "not present on the engine", hint="build the images first") from e
        except docker.errors.APIError as e:
            dropped = [d for d in devices if _is_device_error(e, d)]
            if not dropped:
                raise PrerequisiteError("kernel probe", f"the engine refused the probe container: {e}") from e
            devices = [d for d in devices if d not in dropped]
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except docker.errors.APIError:
                    pass
    raise PrerequisiteError("kernel probe", "the engine refused the probe container's devices")


# --- protocols -------------------------------------------------------------


@dataclass(frozen=True)
class Alternative:
    feature: str
    via: str  # how the protocol runs when this alternative is the one available


# protocol -> needs; each need is a tuple of alternatives, the first available wins.
PROTOCOL_REQUIREMENTS: dict[str, tuple[tuple[Alternative, ...], ...]] = {
    "wireguard": (
        (Alternative("wireguard", "kernel WireGuard"),
         Alternative("tun", "wireguard-go (userspace, no kernel WireGuard)")),
    ),
    "openvpn-udp": ((Alternative("tun", "TUN"),),),
    "openvpn-tcp": ((Alternative("tun", "TUN"),),),
    "pptp": (
        (Alternative("ppp", "kernel PPP (GRE in user space)"),),
        (Alternative("pptp_helper", "pptp conntrack helper on the router"),),
    ),
    "l2tp": (
        (Alternative("ppp", "kernel PPP"),),
        (Alternative("l2tp", "kernel L2TP"),),
    ),
    # transport mode needs kernel ESP: strongSwan's kernel-libipsec does tunnel mode only
    "l2tp-ipsec": (
        (Alternative("ppp", "kernel PPP"),),
        (Alternative("l2tp", "kernel L2TP"),),
        (Alternative("esp", "kernel ESP (transport mode)"),),
    ),
    "ikev2": (
        (Alternative("esp", "kernel ESP"),
         Alternative("tun", "strongSwan kernel-libipsec (no kernel ESP)")),
    ),
}

# Not needed to come up, but a lab case depends on them.
PROTOCOL_RECOMMENDED: dict[str, dict[str, str]] = {
    "pptp": {
        "nf_nat_pptp": "two LAN clients through one NAT need its call-ID rewriting; a container cannot "
        "load it: run 'sudo modprobe nf_nat_pptp' on the engine's host"
    },
}


@dataclass
class ProtocolSupport:
    name: str
    runnable: bool | None  # None: nothing known missing, but something could not be determined
    via: str
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    recommended_missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _need_label(need: tuple[Alternative, ...]) -> str:
    labels = [FEATURE_LABELS.get(a.feature, a.feature) for a in need]
    if len(need) > 1:
        return " or ".join(f"{lbl} for {a.via}" if i else lbl for i, (lbl, a) in enumerate(zip(labels, need)))
    return labels[0]


def check_protocol(name: str, features: KernelFeatures) -> ProtocolSupport:
    """Can ``name`` run on this kernel, by which path, and what exactly is missing."""
    if name not in PROTOCOL_REQUIREMENTS:
        raise PrerequisiteError(
            f"protocol {name}", "unknown", hint="known: " + ", ".join(sorted(PROTOCOL_REQUIREMENTS))
        )
    vias: list[str] = []
    missing: list[str] = []
    unknown: list[str] = []
    for need in PROTOCOL_REQUIREMENTS[name]:
        states = [features.available(a.feature) for a in need]
        chosen = next((a for a, s in zip(need, states) if s is True), None)
        if chosen is not None:
            if chosen.via not in vias:
                vias.append(chosen.via)
        elif any(s is None for s in states):
            unknown.append(_need_label(need))
        else:
            missing.append(_need_label(need))
    recommended = [
        f"{FEATURE_LABELS.get(f, f)}: {why}"
        for f, why in PROTOCOL_RECOMMENDED.get(name, {}).items()
        if features.available(f) is not True
    ]
    runnable: bool | None = False if missing else (None if unknown else True)
    return ProtocolSupport(
        name=name,
        runnable=runnable,
        via=" + ".join(vias) if runnable else "",
        missing=missing,
        unknown=unknown,
        recommended_missing=recommended,
    )
