package provider

// Twilio error codes (shared by the send adapter's callers and the ingest path, which may
// not import Twilio's SDK) that prove a number cannot receive SMS: 21211 invalid number, 21214
// unknown number, 21614 landline or not SMS-capable, 30005 unknown destination handset,
// 30006 landline or unreachable carrier (30003, a handset switched off, is temporary and does
// not count). Twilio reports them in status callbacks and, for 21211 and 21614, as the 400
// answer to the create-message call (no callback follows then).
var twilioUnreachableCodes = map[string]bool{"21211": true, "21214": true, "21614": true, "30005": true, "30006": true}

// TwilioOptedOutCode is Twilio's error code for a recipient who replied STOP (21610), in a status
// callback or as the 400 answer to the create-message call.
const TwilioOptedOutCode = "21610"

// TwilioUnreachableCode reports whether a Twilio error code proves the number cannot receive SMS.
func TwilioUnreachableCode(code string) bool { return twilioUnreachableCodes[code] }
