/** A call recorded by an aws-sdk-client-mock stub (`mock.commandCalls(X)[i]`), a sinon spy call. */
interface RecordedCall {
  calledBefore(other: never): boolean;
}

/**
 * True when every call was made and each one before the next. Sinon numbers calls across all
 * stubs, so this orders calls made on different clients (a DynamoDB write before an SSM send).
 */
export const inCallOrder = (...calls: (RecordedCall | undefined)[]): boolean => {
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i];
    if (call === undefined) return false;
    const previous = i > 0 ? calls[i - 1] : undefined;
    if (previous && !previous.calledBefore(call as never)) return false;
  }
  return true;
};
