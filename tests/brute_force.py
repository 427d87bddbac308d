"""Brute-force references shared by tests, independent of the library's own counting code."""


def stirling2(n, k):
    """Stirling numbers of the second kind by the textbook recurrence."""
    if n == k:
        return 1
    if k == 0 or k > n:
        return 0
    return k * stirling2(n - 1, k) + stirling2(n - 1, k - 1)
