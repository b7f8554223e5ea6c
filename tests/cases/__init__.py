"""One :class:`~tests.cases.case.ProviderCase` per registered HTTP provider, for the contract
suite; each module also holds the provider's test data (key, deployment, request, answers) its
own tests share."""
