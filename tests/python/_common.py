"""Shared helpers of the paho-mqtt interop scripts: argument parsing, bounded waits, failure.

Every script takes the broker's MQTT port as its only argument, talks to 127.0.0.1 only,
exits 0 on success and 1 with a message on stderr on failure. Every wait is bounded, and a
watchdog ends the script if anything hangs.
"""

import queue
import signal
import sys

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
WAIT = 5.0
WATCHDOG_SECS = 45


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def _watchdog(_signum, _frame):
    fail(f"watchdog: the script did not finish within {WATCHDOG_SECS}s")


def port_from_argv(name):
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print(f"usage: {name} PORT", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(WATCHDOG_SECS)
    return int(sys.argv[1])


class Client:
    """A paho client whose CONNACK, SUBACK and messages are waited for with timeouts."""

    def __init__(self, port, client_id, protocol, clean=True, session_expiry=None):
        self.port = port
        self.protocol = protocol
        self.clean = clean
        self.session_expiry = session_expiry
        kwargs = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_connect = lambda _c, _u, flags, rc, _p: self.connack.put((flags.session_present, rc))
        self.c.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.put((mid, rcs))
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def connect(self):
        props = None
        kwargs = {}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = self.clean
            if self.session_expiry is not None:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                kwargs["properties"] = props
        self.c.connect(HOST, self.port, keepalive=30, **kwargs)
        self.c.loop_start()
        try:
            present, rc = self.connack.get(timeout=WAIT)
        except queue.Empty:
            fail(f"{self.c._client_id!r}: no CONNACK within {WAIT}s")
        if rc.is_failure:
            fail(f"{self.c._client_id!r}: CONNACK refused: {rc}")
        return present

    def subscribe(self, topic, qos):
        _, mid = self.c.subscribe(topic, qos)
        try:
            got_mid, rcs = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            fail(f"no SUBACK for {topic} within {WAIT}s")
        if got_mid != mid or [int(rc.value) for rc in rcs] != [qos]:
            fail(f"SUBACK for {topic}: mid {got_mid} (sent {mid}), codes {rcs}, wanted [{qos}]")

    def publish(self, topic, payload, qos):
        info = self.c.publish(topic, payload, qos)
        info.wait_for_publish(timeout=WAIT)
        if not info.is_published():
            fail(f"publish of {payload!r} on {topic} not acknowledged within {WAIT}s")

    def next_message(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


PROTOCOLS = [("3.1.1", mqtt.MQTTv311), ("5.0", mqtt.MQTTv5)]

