"""ember.functional (alias ``F``): every differentiable op as a function.

One file per op family. Each op is one C++ forward call and one C++ backward call, written side
by side: the forward computes the output and returns it through ``make_result`` together with a
``backward`` closure that maps the output gradient to the input gradients.
"""
from ._linear import *  # noqa: F401,F403
from ._activation import *  # noqa: F401,F403
from ._loss import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._dropout import *  # noqa: F401,F403
from ._embedding import *  # noqa: F401,F403
from ._rnn import *  # noqa: F401,F403
