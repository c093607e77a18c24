"""Writes real-shaped bank statements for tests: camt.053 (versions .001.02 to .001.13, with
the element shapes each version uses) and MT940 (with or without the SWIFT envelope).

The shapes follow the ISO 20022 schemas and what banks send: a namespaced `Document`,
`GrpHdr`, one `Stmt` per account with opening (OPBD) and closing (CLBD) balances computed
from the entries, `Ntry` with `NtryDtls/TxDtls`. What differs between versions and is
reproduced here: `Sts` is a code until .07 and `Sts/Cd` from .08; a related party's name is
`Dbtr/Nm` until .07 and `Dbtr/Pty/Nm` from .08; a transaction's own `Amt` and `CdtDbtInd`
exist from .04 (before, only `AmtDtls/TxAmt/Amt`); the BIC element is `BIC` until .03.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from xml.sax.saxutils import escape

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.{:02d}"
IBAN = "DE89370400440532013000"


@dataclass
class Tx:
    amount: str | None = None  # as written in the file; None: the bank left it out
    e2e: str | None = None
    ref: str | None = None  # structured creditor reference (RmtInf/Strd/CdtrRefInf/Ref)
    ustrd: str | None = None
    debtor: str | None = None
    acct_svcr_ref: str | None = None
    direction: str | None = None  # CRDT/DBIT when it differs from the entry's


@dataclass
class Ntry:
    amount: str
    direction: str = "CRDT"
    reversal: bool = False
    booking: str = "2026-03-15"
    value: str = "2026-03-16"
    ntry_ref: str | None = None
    acct_svcr_ref: str | None = None
    status: str = "BOOK"
    currency: str = "EUR"
    txs: list[Tx] = field(default_factory=list)

    def signed(self) -> Decimal:
        value = Decimal(self.amount)
        return value if self.direction == "CRDT" else -value


def sample_entries() -> list[Ntry]:
    """The statement most tests read: six entries, eight payments."""
    return [
        # 1: a payment with the invoice's structured RF reference, written as 1234.5
        Ntry("1234.5", ntry_ref="1", acct_svcr_ref="2026031500001", txs=[
            Tx(e2e="E2E-INV-2026-000123", ref="RF462026000123", debtor="Jürgen Müller",
               ustrd="Rechnung 2026-000123")]),
        # 2: one cent, only free text naming the invoice, a non-ASCII company name
        Ntry("0.01", ntry_ref="2", acct_svcr_ref="2026031500002", txs=[
            Tx(e2e="NOTPROVIDED", ustrd="Invoice 2026-000124 thank you",
               debtor="Ærøskøbing Café & Søn ApS")]),
        # 3: a batch entry (collected payments) with three transactions of its own
        Ntry("300.00", ntry_ref="3", acct_svcr_ref="2026031500003", txs=[
            Tx("100.00", e2e="BATCH-1", ref="RF18539007547034", debtor="Anna Svensson",
               acct_svcr_ref="2026031500003-1"),
            Tx("150.00", e2e="BATCH-2", ustrd="2026-000125", debtor="Łukasz Żółć",
               acct_svcr_ref="2026031500003-2"),
            Tx("50.00", e2e="BATCH-3", debtor="Nobody Known", acct_svcr_ref="2026031500003-3"),
        ]),
        # 4: a debit: the bank's fees
        Ntry("25.00", direction="DBIT", ntry_ref="4", acct_svcr_ref="2026031500004", txs=[
            Tx(ustrd="Kontofuehrung 03/2026")]),
        # 5: a reversal: a credit of 50.00 from an earlier day taken back (booked as a debit)
        Ntry("50.00", direction="DBIT", reversal=True, ntry_ref="5",
             acct_svcr_ref="2026031500005", txs=[
                 Tx(e2e="E2E-RETURNED", ref="RF462026000123", debtor="Jürgen Müller")]),
        # 6: a credit without any bank reference, paid by amount and name only
        Ntry("80.00", booking="2026-03-15", txs=[Tx(debtor="MUELLER JUERGEN")]),
    ]


def _amount(tag: str, amount: str, currency: str) -> str:
    return f'<{tag} Ccy="{currency}">{amount}</{tag}>'


def _tx(v: int, tx: Tx, entry: Ntry) -> str:
    refs = "".join(f"<{tag}>{escape(value)}</{tag}>" for tag, value in
                   (("AcctSvcrRef", tx.acct_svcr_ref), ("EndToEndId", tx.e2e)) if value)
    parts = [f"<Refs>{refs}</Refs>" if refs else ""]
    if tx.amount is not None:
        if v >= 4:
            parts.append(_amount("Amt", tx.amount, entry.currency))
            parts.append(f"<CdtDbtInd>{tx.direction or entry.direction}</CdtDbtInd>")
        parts.append(f"<AmtDtls><TxAmt>{_amount('Amt', tx.amount, entry.currency)}</TxAmt>"
                     "</AmtDtls>")
    parts.append("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd>"
                 "</Fmly></Domn></BkTxCd>")
    if tx.debtor:
        name = f"<Nm>{escape(tx.debtor)}</Nm>"
        party = f"<Pty>{name}</Pty>" if v >= 8 else name
        parts.append(f"<RltdPties><Dbtr>{party}</Dbtr><DbtrAcct><Id><IBAN>FR7630006000011234567"
                     f"890189</IBAN></Id></DbtrAcct><Cdtr>{'<Pty>' if v >= 8 else ''}<Nm>Loyalty"
                     f" Chain GmbH</Nm>{'</Pty>' if v >= 8 else ''}</Cdtr></RltdPties>")
    remittance = ""
    if tx.ustrd:
        remittance += f"<Ustrd>{escape(tx.ustrd)}</Ustrd>"
    if tx.ref:
        remittance += ("<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO"
                       f"</Issr></Tp><Ref>{escape(tx.ref)}</Ref></CdtrRefInf></Strd>")
    if remittance:
        parts.append(f"<RmtInf>{remittance}</RmtInf>")
    return f"<TxDtls>{''.join(parts)}</TxDtls>"


def _entry(v: int, entry: Ntry) -> str:
    status = f"<Sts><Cd>{entry.status}</Cd></Sts>" if v >= 8 else f"<Sts>{entry.status}</Sts>"
    booking = (f"<DtTm>{entry.booking}</DtTm>" if "T" in entry.booking
               else f"<Dt>{entry.booking}</Dt>")
    parts = [
        f"<NtryRef>{entry.ntry_ref}</NtryRef>" if entry.ntry_ref else "",
        _amount("Amt", entry.amount, entry.currency),
        f"<CdtDbtInd>{entry.direction}</CdtDbtInd>",
        "<RvslInd>true</RvslInd>" if entry.reversal else "",
        status,
        f"<BookgDt>{booking}</BookgDt>",
        f"<ValDt><Dt>{entry.value}</Dt></ValDt>",
        f"<AcctSvcrRef>{entry.acct_svcr_ref}</AcctSvcrRef>" if entry.acct_svcr_ref else "",
        ("<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd>"),
    ]
    if entry.txs:
        batch = (f"<Btch><NbOfTxs>{len(entry.txs)}</NbOfTxs></Btch>"
                 if len(entry.txs) > 1 else "")
        parts.append(f"<NtryDtls>{batch}{''.join(_tx(v, tx, entry) for tx in entry.txs)}"
                     "</NtryDtls>")
    return f"<Ntry>{''.join(parts)}</Ntry>"


def _balance(code: str, value: Decimal, currency: str, on: str) -> str:
    mark = "CRDT" if value >= 0 else "DBIT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f"{_amount('Amt', str(abs(value)), currency)}<CdtDbtInd>{mark}</CdtDbtInd>"
            f"<Dt><Dt>{on}</Dt></Dt></Bal>")


def stmt(v: int, entries: list[Ntry], *, stmt_id: str = "STMT-20260315-001",
         iban: str = IBAN, currency: str = "EUR", opening: str = "1000.00",
         closing: str | None = None) -> str:
    booked = sum((e.signed() for e in entries if e.status == "BOOK"), Decimal(0))
    close = Decimal(closing) if closing is not None else Decimal(opening) + booked
    bic = "BICFI" if v >= 4 else "BIC"
    return (
        f"<Stmt><Id>{stmt_id}</Id><ElctrncSeqNb>74</ElctrncSeqNb>"
        "<CreDtTm>2026-03-16T06:00:00+01:00</CreDtTm>"
        "<FrToDt><FrDtTm>2026-03-15T00:00:00+01:00</FrDtTm>"
        "<ToDtTm>2026-03-15T23:59:59+01:00</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{currency}</Ccy><Ownr><Nm>Loyalty Chain GmbH"
        f"</Nm></Ownr><Svcr><FinInstnId><{bic}>COBADEFFXXX</{bic}></FinInstnId></Svcr></Acct>"
        + _balance("OPBD", Decimal(opening), currency, "2026-03-14")
        + _balance("CLBD", close, currency, "2026-03-15")
        + f"<TxsSummry><TtlNtries><NbOfNtries>{len(entries)}</NbOfNtries></TtlNtries>"
        "</TxsSummry>"
        + "".join(_entry(v, e) for e in entries)
        + "</Stmt>")


def camt053(v: int = 8, entries: list[Ntry] | None = None, *, statements: list[str] | None = None,
            namespace: str | None = None, **kw: str) -> bytes:
    """A camt.053.001.<v> document; `statements` (from `stmt`) for several in one file."""
    body = "".join(statements) if statements is not None else stmt(
        v, sample_entries() if entries is None else entries, **kw)
    ns = namespace if namespace is not None else NS.format(v)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        "<BkToCstmrStmt><GrpHdr><MsgId>MSG-20260316-0001</MsgId>"
        "<CreDtTm>2026-03-16T06:00:00+01:00</CreDtTm>"
        "<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>"
        f"{body}</BkToCstmrStmt>\n</Document>\n").encode()


# --- MT940 -----------------------------------------------------------------------------


def wrap86(details: str) -> str:
    """A :86: field as banks write it: cut every 65 characters, mid-word if need be."""
    return "\n".join(details[i:i + 65] for i in range(0, len(details), 65))


@dataclass
class Line:
    """One :61: statement line and its :86: details."""

    mark: str  # C, D, RC, RD
    amount: str  # as written, comma decimal: "1234,5", "25,"
    details: str | None = None
    bank_reference: str | None = None
    value: str = "260315"
    entry: str = "0315"
    code: str = "NTRF"
    funds: str = ""

    def signed(self) -> Decimal:
        value = Decimal(self.amount.replace(",", "."))
        return value if self.mark in ("C", "RD") else -value

    def text(self) -> str:
        bank = f"//{self.bank_reference}" if self.bank_reference else ""
        line = (f":61:{self.value}{self.entry}{self.mark}{self.funds}{self.amount}"
                f"{self.code}NONREF{bank}")
        return line + (f"\n:86:{wrap86(self.details)}" if self.details is not None else "")


def sample_lines() -> list[Line]:
    """The MT940 most tests read: German ?-structured details with the RF reference, a
    /CODE/-structured one-cent credit with a non-ASCII name, a debit written `25,`, a
    reversal of a credit (RC) and of a debit (RD), a credit without a bank reference, and a
    credit with a structured creditor reference (/REMI/STRD/CUR/)."""
    return [
        Line("C", "1234,5", funds="R", bank_reference="2026031500001", details=(
            "166?00SEPA-GUTSCHRIFT?109251?20EREF+E2E-INV-2026-000123?21SVWZ+RF46 2026 0001 23"
            " Re?22chnung 2026-000123?30COBADEFFXXX?31DE02120300000000202051?32Jürgen Mülle"
            "r")),
        Line("C", "0,01", bank_reference="2026031500002", details=(
            "/EREF/NOTPROVIDED/REMI/USTD//Invoice 2026-000124 thank you/NAME/Ærøskøbing Caf"
            "é & Søn ApS/")),
        Line("D", "25,", code="NCHG", bank_reference="2026031500004",
             details="Kontofuehrung 03/2026"),
        Line("RC", "50,00", code="NRTI", bank_reference="2026031500005",
             details="166?00RUECKUEBERWEISUNG?20EREF+E2E-RETURNED?32Jürgen Müller"),
        Line("RD", "7,50", bank_reference="2026031500006", details="Storno Lastschrift"),
        Line("C", "80,00", entry="0316", details="MUELLER JUERGEN"),
        Line("C", "100,00", bank_reference="2026031500007", details=(
            "/EREF/E2E-7/REMI/STRD/CUR/RF18539007547034/NAME/Anna Svensson/")),
    ]


def mt940(lines: list[Line] | None = None, *, reference: str = "STARTUMS",
          account: str = IBAN, number: str = "00074/001", opening: str = "1000,00",
          currency: str = "EUR", closing: str | None = None) -> str:
    """One MT940 statement (no envelope); join several with `envelope` or newlines."""
    lines = sample_lines() if lines is None else lines
    opened = Decimal(opening.replace(",", "."))
    close = (Decimal(closing.replace(",", ".")) if closing is not None
             else opened + sum((line.signed() for line in lines), Decimal(0)))
    mark = "C" if close >= 0 else "D"
    closed = f"{abs(close)}".replace(".", ",")
    body = "\n".join(line.text() for line in lines)
    return (f":20:{reference}\n:25:{account}\n:28C:{number}\n:60F:C260314{currency}{opening}\n"
            + (body + "\n" if body else "")
            + f":62F:{mark}260315{currency}{closed}\n:64:{mark}260315{currency}{closed}")


def envelope(*statements: str) -> str:
    """Each statement in its SWIFT FIN envelope, as a bank's file delivers them."""
    return "\n".join(
        "{1:F01COBADEFFAXXX0000000000}{2:O9400600260316COBADEFFAXXX00000000002603160600N}"
        f"{{4:\n{statement}\n-}}" for statement in statements)
