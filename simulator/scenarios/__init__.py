"""Demo scenarios of the device simulators, one module each: ``run(issuer, say)``
(``manage.py device_demo`` runs them; their server-side set-up is in ``simulator.demo_setup``)."""
