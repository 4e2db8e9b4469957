// Package replies is the pure model of a customer's reply: carrier keywords (STOP, START,
// HELP), masking, the rules that classify a free-text reply into a recoup.Intent when no
// model is configured (or the model's answer is unusable), promised dates, and the mapping
// from intent to what the run does (prompts/replies.yaml). No I/O and no clock: safe inside
// a workflow.
package replies

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Keyword is a carrier keyword: a reply that is only this word, whatever its case and the
// spaces around it, is handled by code before any model sees the text.
type Keyword string

const (
	KeywordNone  Keyword = ""
	KeywordStop  Keyword = "stop"  // opt out of SMS: stored in the consent ledger (source reply)
	KeywordStart Keyword = "start" // opt back in to SMS
	KeywordHelp  Keyword = "help"  // no change: the carrier (Twilio) answers HELP itself
)

// keywords maps each whole-message keyword (upper case, without diacritics) to its meaning.
//
// English: Twilio's default opt-out keywords (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
// QUIT), opt-in keywords (START, YES, UNSTOP) and help keywords (HELP, INFO), "Twilio
// support for opt-out keywords (SMS STOP filtering)",
// https://help.twilio.com/articles/223134027 and
// https://www.twilio.com/docs/messaging/services/tutorials/advanced-opt-out; the CTIA
// Messaging Principles and Best Practices name the same set; REVOKE and OPTOUT follow the
// FCC's 2024 revocation-of-consent order, which Twilio added to its defaults. Twilio's
// Proxy documentation also lists the French ARRET, ARRETE and ARRETT
// (https://www.twilio.com/docs/proxy/opt-out-keywords). Only single-word replies trigger
// carrier handling ("STOP PLEASE" does not), and so here.
//
// Spanish and German: the languages Recoup's messages ship in (prompts/messages/es, de).
// Carriers define no keywords in them; Twilio's Advanced Opt-Out lets a Messaging Service
// add keywords per language, and these are the ones we configure there (docs: README,
// "Replies"): es BAJA, ALTO, PARAR, DETENER, CANCELAR (opt-out), ALTA, INICIAR (opt-in),
// AYUDA (help); de STOPP, ABMELDEN, ABBESTELLEN, BEENDEN (opt-out), ANMELDEN (opt-in),
// HILFE (help). A keyword Twilio does not know still opts out here: when in doubt, stop.
var keywords = map[string]Keyword{
	// en (Twilio defaults, CTIA, FCC)
	"STOP": KeywordStop, "STOPALL": KeywordStop, "UNSUBSCRIBE": KeywordStop, "CANCEL": KeywordStop,
	"END": KeywordStop, "QUIT": KeywordStop, "REVOKE": KeywordStop, "OPTOUT": KeywordStop, "OPT OUT": KeywordStop,
	"START": KeywordStart, "YES": KeywordStart, "UNSTOP": KeywordStart,
	"HELP": KeywordHelp, "INFO": KeywordHelp,
	// fr (Twilio Proxy's list)
	"ARRET": KeywordStop, "ARRETE": KeywordStop, "ARRETT": KeywordStop,
	// es
	"BAJA": KeywordStop, "ALTO": KeywordStop, "PARAR": KeywordStop, "DETENER": KeywordStop, "CANCELAR": KeywordStop,
	"ALTA": KeywordStart, "INICIAR": KeywordStart,
	"AYUDA": KeywordHelp,
	// de
	"STOPP": KeywordStop, "ABMELDEN": KeywordStop, "ABBESTELLEN": KeywordStop, "BEENDEN": KeywordStop,
	"ANMELDEN": KeywordStart,
	"HILFE":    KeywordHelp,
}

// DetectKeyword reports the carrier keyword a reply is, or KeywordNone when the reply is
// anything more than one keyword (case-insensitive, trimmed, diacritics ignored: "Stop.",
// " baja ", "STÓP"). Emoji, symbols and punctuation are not words: "STOP 🛑", "🛑 STOP" and
// "STOP!!! 😡" are STOP, and so is the same keyword repeated ("STOP STOP", "stop. stop").
// Any other word makes the reply free text ("STOP sending me texts", "STOP PLEASE"), as
// Twilio documents it: "Only single-word messages will trigger the block"
// (https://help.twilio.com/articles/223134027). Recoup keeps its own consent ledger, so
// being stricter than the carrier about what a STOP looks like errs on the side of stopping.
func DetectKeyword(text string) Keyword {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r) || unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) {
			return ' '
		}
		return r
	}, fold(text))
	words := strings.Fields(strings.ToUpper(s))
	if k, ok := keywords[strings.Join(words, " ")]; ok {
		return k
	}
	if len(words) < 2 || slices.ContainsFunc(words, func(w string) bool { return w != words[0] }) {
		return KeywordNone
	}
	return keywords[words[0]] // "STOP STOP"
}

// fold is NFKC-normalised text without diacritics and control characters.
func fold(text string) string {
	d := norm.NFKD.String(text)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Cf, r):
		case r == 'ß':
			b.WriteString("ss")
		case unicode.IsControl(r) && r != '\n' && r != '\t':
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFKC.String(b.String())
}
