"""paho-mqtt 2.x: session resumption, MQTT 3.1.1 (clean_session=False) and 5.0 (clean_start
False, Session Expiry Interval 60).

A subscriber disconnects; 5 QoS 1 messages are published while it is away; it reconnects,
sees session_present, and gets the 5 messages in order.
Usage: paho_session.py PORT
"""

import paho.mqtt.client as mqtt

from _common import PROTOCOLS, Client, fail, port_from_argv

COUNT = 5


def main():
    port = port_from_argv("paho_session.py")
    for name, protocol in PROTOCOLS:
        topic = f"pysess/{name}"
        client_id = f"pysess-{name}"
        expiry = 60 if protocol == mqtt.MQTTv5 else None
        sub = Client(port, client_id, protocol, clean=True, session_expiry=expiry)
        sub.connect()
        sub.stop()
        sub = Client(port, client_id, protocol, clean=False, session_expiry=expiry)
        sub.connect()
        sub.subscribe(topic, 1)
        sub.stop()
        pub = Client(port, f"pysess-pub-{name}", protocol)
        pub.connect()
        for i in range(COUNT):
            pub.publish(topic, f"queued-{i}".encode(), 1)
        pub.stop()
        sub = Client(port, client_id, protocol, clean=False, session_expiry=expiry)
        if not sub.connect():
            fail(f"MQTT {name}: session_present is 0 on resumption")
        for i in range(COUNT):
            msg = sub.next_message()
            if msg is None:
                fail(f"MQTT {name}: queued message {i} of {COUNT} did not arrive")
            if (msg.topic, msg.payload) != (topic, f"queued-{i}".encode()):
                fail(f"MQTT {name}: message {i}: got {msg.topic} {msg.payload!r}")
        sub.stop()
    print(f"ok: {COUNT} queued QoS 1 messages delivered on resumption over MQTT 3.1.1 and 5.0")


main()
