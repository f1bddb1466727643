// Package account is the bank-transfer example: one entity per bank
// account, and a transfer saga between two accounts that stays correct
// through crashes, lost and duplicated messages.
//
// # The domain
//
// An account holds a balance in integer cents. Money enters with a Deposit
// and leaves with a Withdraw (both stand for the outside world: a cash
// desk, a card network). A Transfer moves money to another account in
// three steps:
//
//  1. The source debits its balance and holds the amount (HeldCents): the
//     money is neither spendable nor gone. It emits a tracked entity-to-
//     entity action, RequestCredit, to the destination.
//  2. The runtime delivers a Credit input to the destination, with the
//     action's idempotency key (machine.IdempotencyKey) as request ID, so a
//     retried delivery is answered from the destination's request window
//     instead of crediting twice. The destination's reply (accepted, or a
//     typed rejection such as ErrClosed) becomes the result of the
//     source's action (see CreditInput and CreditResult).
//  3. The source settles: a credited transfer releases the hold for good
//     (DebitedCents); a rejected one refunds the hold to the balance.
//
// Each transfer is therefore applied exactly once on each side: the
// source's action ID is outstanding until exactly one result arrives (the
// driver drops the others), and the destination applies a credit once per
// key. As a second line of defence, beyond the runtime's bounded request
// window, an account remembers its last RecentTransfers transfers and
// answers a credit it already applied with ErrAlreadyCredited, which
// CreditResult reads as success.
//
// After a crash, Restore re-emits RequestCredit for every transfer still
// held, under its original ID: the destination either applies it (the
// first delivery was lost) or recognises it.
//
// An account is open from its first input; Close closes an empty account
// for good, after which credits are rejected (and their sources refunded).
//
// # Reading the state from outside
//
// A load driver or an auditor checks a run by reading states (a query;
// nothing here needs the journal):
//
//   - per account, Totals: money deposited, withdrawn, transferred out
//     (accepted), debited (settled out), refunded and credited, each with a
//     count. For every account Balance+Held = Deposited + Credited -
//     Withdrawn - Debited, and Transferred = Debited + Refunded + Held.
//   - across accounts, once quiesced (no transfer held anywhere): the sum
//     of Debited equals the sum of Credited, and the counts match too (each
//     settled transfer was credited exactly once); the sum of balances
//     equals the sum of deposits minus withdrawals.
//   - Recent: the last RecentTransfers transfers an account took part in,
//     with the client's Ref, the peer, the transfer's action ID and the
//     outcome. A driver that tags transfers with unique Refs can check a
//     sample: a settled Ref appears exactly once as credited at its
//     destination.
//
// While transfers are in flight, a credit may already be applied at the
// destination while the source still holds the amount; sums taken then
// count it twice. The simulation (Model) keeps a history of accepted
// inputs (sim.Observer) to subtract exactly those, and checks conservation
// after every step.
package account
