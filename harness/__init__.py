"""What the tests, the e2e suite and the benchmarks share to drive real processes.

Free ports, bounded waits and stopping a child (`processes`), one-shot HTTP
requests (`http`), the app's server as a child process (`app_server`), the
clients the hostile-client tests and benchmark use (`clients`), and stack
config values as the CLI hands them to a program (`stack_values`). Nothing here
is imported by the product (app/, webapp_platform/, tools/).
"""
