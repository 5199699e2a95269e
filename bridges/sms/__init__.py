"""SMS through a Kannel gateway: the Rakel/GSM text channel of an alarm (DESIGN §3).

:mod:`bridges.sms.gsm7` says what a text costs in segments; :mod:`bridges.sms.kannel` sends
through Kannel's ``sendsms`` with failover between gateways and parses what Kannel calls back
(delivery reports and inbound replies).
"""
