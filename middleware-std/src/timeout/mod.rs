//! Request budgets.
