"""paho-mqtt 2.x: MQTT 5 shared subscriptions.

Three members of $share/g/pyshared/t; 30 QoS 1 messages: each delivered to exactly one
member, and all of them delivered.
Usage: paho_shared.py PORT
"""

import time

import paho.mqtt.client as mqtt

from _common import WAIT, Client, fail, port_from_argv

COUNT = 30
MEMBERS = 3


def main():
    port = port_from_argv("paho_shared.py")
    members = []
    for i in range(MEMBERS):
        m = Client(port, f"pyshared-{i}", mqtt.MQTTv5)
        m.connect()
        m.subscribe("$share/g/pyshared/t", 1)
        members.append(m)
    pub = Client(port, "pyshared-pub", mqtt.MQTTv5)
    pub.connect()
    for i in range(COUNT):
        pub.publish("pyshared/t", f"s-{i}".encode(), 1)
    got = []
    deadline = time.monotonic() + WAIT
    while len(got) < COUNT and time.monotonic() < deadline:
        for i, m in enumerate(members):
            msg = m.next_message(timeout=0.02)
            if msg is not None:
                got.append((i, msg.payload.decode()))
    # Anything arriving now would be a second copy.
    for i, m in enumerate(members):
        extra = m.next_message(timeout=0.2)
        if extra is not None:
            got.append((i, extra.payload.decode()))
    payloads = sorted(p for _, p in got)
    wanted = sorted(f"s-{i}" for i in range(COUNT))
    if payloads != wanted:
        missing = sorted(set(wanted) - set(payloads))
        dups = sorted({p for p in payloads if payloads.count(p) > 1})
        fail(f"shared delivery: {len(got)} deliveries for {COUNT} messages; missing {missing}, duplicated {dups}")
    per_member = [sum(1 for i, _ in got if i == m) for m in range(MEMBERS)]
    pub.stop()
    for m in members:
        m.stop()
    print(f"ok: {COUNT} messages, each to exactly one of {MEMBERS} members (per member: {per_member})")


main()
