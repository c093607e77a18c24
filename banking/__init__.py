"""The bank side of invoicing: payment references, bank statements, matching (pure).

`creditorref` makes and checks ISO 11649 RF creditor references; `statement` is the one
model of a bank statement, read from camt.053 (`camt053`) or MT940 (`mt940`) bytes by
`statement.parse_statements`; `matching` pairs a statement's credits with open invoices; `payee` checks the chain's IBAN
and BIC and makes the EPC QR text that pays an invoice.
Promises: no I/O beyond the bytes handed in, no clock, no database; money is integer minor
units. Must never: import anything of the project but schema.errors.
"""
