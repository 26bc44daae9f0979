"""Monitoring: drift, measured and estimated performance, and fairness of live answers.

``drift`` judges a day's data and predictions against the model's reference with tests whose
false-alarm rate holds at any volume; ``performance`` measures recall once outcomes mature and
estimates it before; ``reference`` reads the held-out slice of the model's data that both
compare with.
"""

import warnings

# Evidently's import path (and litestar's, which it imports) warns about deprecations of its
# own dependencies on every run; they are not the user's to act on.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(evidently|litestar)")
warnings.filterwarnings("ignore", message=r".*(numpy\.core is deprecated|invalid escape "
                        r"sequence|Call to deprecated function 'Dependency'|deprecated class "
                        r"'DependencyKwarg').*")
