"""What an operator does by hand, shared by both roles (compute node and validator).

::

    config.py    the TOML config file, validated by pydantic-settings, SYNOD_* env overrides
    keys.py      eth-account encrypted keystores and where their passwords come from
    amounts.py   token amounts: Decimal text <-> integer base units, by the token's decimals()
    connect.py   connecting from a config: chain id, deployment and contract code checked first
    account.py   status, an idempotent register (plan, then only the transactions that differ),
                 unbond, withdraw, claim
    rewards.py   every payout, unpaid result, slash and claim of an account, from chain events
    errors.py    OperatorError and its subclasses: sentences that say what to do

One implementation serves both roles; the role is a parameter (:class:`OperatorRole`).
"""
