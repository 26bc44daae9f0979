"""Monitoring: drift, measured and estimated performance, and fairness of live answers.

``drift`` judges a day's data and predictions against the model's reference with tests whose
false-alarm rate holds at any volume; ``performance`` measures recall once outcomes mature and
estimates it before; ``reference`` reads the held-out slice of the model's data that both
compare with.
"""
