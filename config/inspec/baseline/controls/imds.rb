# The launch template requires IMDSv2 (http_tokens = required). Checked from inside the instance:
# a request without a session token must be refused (401), one with a token must succeed.
control 'baseline-imds-01' do
  impact 1.0
  title 'The instance metadata service requires IMDSv2 session tokens'
  describe command("curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://169.254.169.254/latest/meta-data/") do
    its('stdout') { should cmp '401' }
  end
  token_then_get = 'token=$(curl -s --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" ' \
                   'http://169.254.169.254/latest/api/token) && ' \
                   'curl -s -o /dev/null -w "%{http_code}" --max-time 5 -H "X-aws-ec2-metadata-token: $token" ' \
                   'http://169.254.169.254/latest/meta-data/instance-id'
  describe command(token_then_get) do
    its('stdout') { should cmp '200' }
  end
end
