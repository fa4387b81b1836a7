// Types of the aws-sdk-client-mock-jest matchers; jest registers them at run time (setupFilesAfterEnv).
/// <reference types="aws-sdk-client-mock-jest" />
